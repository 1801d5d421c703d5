"""Chapter 6's generated configs say what the lesson says, and bad settings fail before any
process starts; the backend answers bad input with a 4xx."""
import pytest

from demos.high_availability import configs
from demos.high_availability.backend import create_app


def test_nginx_conf_keeps_every_path_in_its_own_folder(tmp_path):
    conf = configs.nginx_conf(tmp_path / "lb1", "lb1", "80", ["10.66.0.20:8001", "10.66.0.20:8002"]).read_text()
    folder = str((tmp_path / "lb1").resolve())
    for line in (f"pid {folder}/nginx.pid;", f"access_log {folder}/access.tsv", f"client_body_temp_path {folder}/tmp/body;",
                 f"proxy_temp_path {folder}/tmp/proxy;", "daemon off;"):
        assert line in conf
    assert "server 10.66.0.20:8001 max_fails=1 fail_timeout=10s;" in conf
    assert "proxy_next_upstream error timeout;" in conf
    assert "add_header X-Balancer lb1 always;" in conf


@pytest.mark.parametrize("options, line", [
    (dict(next_upstream=False), "proxy_next_upstream off;"),
    (dict(non_idempotent=True), "proxy_next_upstream error timeout non_idempotent;"),
    (dict(policy="least_conn"), "least_conn;"),
])
def test_nginx_conf_options(tmp_path, options, line):
    assert line in configs.nginx_conf(tmp_path, "lb1", "80", ["10.66.0.20:8001"], **options).read_text()


@pytest.mark.parametrize("backends, message", [
    ([], "at least one backend"),
    (["10.66.0.20"], "host:port"),
    (["10.66.0.20:70000"], "port from 1 to 65535"),
    (["10.66.0.20:80; evil"], "host:port"),
])
def test_bad_backends_fail_before_nginx_starts(tmp_path, backends, message):
    with pytest.raises(ValueError, match=message):
        configs.nginx_conf(tmp_path, "lb1", "80", backends)


def test_unknown_policy_fails(tmp_path):
    with pytest.raises(ValueError, match="policy"):
        configs.nginx_conf(tmp_path, "lb1", "80", ["10.66.0.20:8001"], policy="random-guess")


def test_the_articles_keepalived_settings(tmp_path):
    article = configs.SETTINGS["article"]
    master = configs.keepalived_conf(tmp_path / "lb1", "lb1", article, master=True, vip="10.66.0.100").read_text()
    backup = configs.keepalived_conf(tmp_path / "lb2", "lb2", article, master=False, vip="10.66.0.100").read_text()
    for line in ("state MASTER", "priority 101", "advert_int 2", "interval 2", "fall 3", "rise 2", "weight -5",
                 "auth_type PASS", "10.66.0.100/24 dev eth0"):
        assert line in master, line
    assert "state BACKUP" in backup and "priority 100" in backup
    assert "vrrp_version" not in master and "nopreempt" not in master
    assert article.bound_s == 3 * 2 + 3 * 2 + 1     # 3 adverts + fall x interval + 1 s


def test_vrrp3_has_sub_second_adverts_and_no_authentication(tmp_path):
    conf = configs.keepalived_conf(tmp_path, "lb1", configs.SETTINGS["vrrp3-fast"], master=True,
                                   vip="10.66.0.100").read_text()
    assert "vrrp_version 3" in conf and "advert_int 0.2" in conf and "authentication" not in conf


def test_nopreempt_starts_both_as_backup_and_the_fault_style_has_weight_0(tmp_path):
    setting = configs.SETTINGS["one-second"].variant(preempt=False, check_style="fault")
    conf = configs.keepalived_conf(tmp_path, "lb1", setting, master=True, vip="10.66.0.100").read_text()
    assert "state BACKUP" in conf and "nopreempt" in conf and "weight 0" in conf


def test_the_check_asks_nginx_over_http_not_pidof(tmp_path):
    configs.keepalived_conf(tmp_path, "lb1", configs.SETTINGS["article"], master=True, vip="10.66.0.100")
    script = (tmp_path / "check_nginx.sh").read_text()
    assert "/dev/tcp/127.0.0.1/80" in script and configs.HEALTH_PATH in script and "pidof" not in script
    assert (tmp_path / "check_nginx.sh").stat().st_mode & 0o111


def test_a_bad_virtual_ip_fails(tmp_path):
    with pytest.raises(ValueError):
        configs.keepalived_conf(tmp_path, "lb1", configs.SETTINGS["article"], master=True, vip="10.66.0.300")


@pytest.fixture
def client():
    return create_app("backend-7").test_client()


def test_backend_says_who_served(client):
    assert client.get("/").get_json() == {"backend": "backend-7"}
    answer = client.post("/order", json={"item": "book"})
    assert answer.status_code == 201 and answer.get_json() == {"backend": "backend-7", "order": 1}


@pytest.mark.parametrize("path", ["/?delay_ms=-1", "/?delay_ms=abc", "/?delay_ms=99999", "/?delay_ms=%C2%B2"])
def test_backend_rejects_bad_delays(client, path):
    assert client.get(path).status_code == 400


@pytest.mark.parametrize("body", [b"[]", b"{not json", b'"text"', b'{"delay_ms": "1e9"}', b"x" * 10_000])
def test_backend_rejects_bad_orders(client, body):
    answer = client.post("/order", data=body, content_type="application/json")
    assert 400 <= answer.status_code < 500 and "error" in answer.get_json()
