"""Chapter 6, high availability (Nginx + Keepalived 实现站点高可用): two nginx load balancers in front
of the application servers, and keepalived (VRRP) floating one virtual IP between them.

The real programs (Debian's nginx and keepalived) run in network namespaces this package creates
and always removes (``topology.py``), from configs generated into a run folder (``configs.py``):

- ``backend``: the application server, a small Flask app that says who served each request;
- ``configs``: nginx.conf, keepalived.conf and the health-check and notify scripts, per setting
  (the article's 2 s adverts, one-second adverts, VRRPv3 with 0.2 s adverts);
- ``topology``: the namespaces (a switch, two balancers, the backends, a client) and their addresses;
- ``probe``: a client that asks the virtual IP every 20 ms and timestamps every answer;
- ``holders``: which balancer holds the virtual IP, sampled every 0.1 s;
- ``cluster``: starting each part (for the harness and by hand); without root, nginx balancing
  local backends on loopback ports, no virtual IP.
"""
