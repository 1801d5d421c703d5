# Two commands for a newcomer (see README.md):
#   make bench   set up .venv, run every chapter's benchmarks (SIZE=default), render the figures
#   make test    set up .venv and run the test suite; its smoke gate runs every scenario at SIZE=smoke
#                (make test SIZE=default: the gate at the main job's size)
# One chapter or scenario alone:  make run CHAPTER=04-message-queues SCENARIO=latency SIZE=smoke
# Do the tests catch a broken guarantee?  make mutants  (mutmut, then the deliberate bugs; not in CI)

SIZE     ?= default
PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
CHAPTER  ?=
SCENARIO ?=
PYTEST_ARGS ?=

.PHONY: bench test run figures compare list servers reference venv clean mutants

venv: $(VENV)/.ready

$(VENV)/.ready: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s): set PYTHON=python3.11" % sys.version.split()[0])'
	@echo "setting up $(VENV) from requirements.txt (about a minute the first time) ..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# make the repository importable from anywhere in the venv (demos, load), like an editable install
	$(PY) -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "architecture-claims.pth").write_text("$(CURDIR)\n")'
	@touch $@

bench: venv
	$(PY) -m load all --size $(SIZE)

# the tests' size is smoke unless SIZE is given on the command line or in the environment
TEST_SIZE := $(if $(filter command line environment,$(origin SIZE)),$(SIZE),smoke)

test: venv
	SIZE=$(TEST_SIZE) $(PY) -m pytest $(PYTEST_ARGS)

run: venv
	$(PY) -m load run $(CHAPTER) $(if $(SCENARIO),--scenario $(SCENARIO)) --size $(SIZE)

figures: venv
	$(PY) -m load figures $(CHAPTER)

compare: venv
	$(PY) -m load compare $(CHAPTER)

list: venv
	$(PY) -m load list --size $(SIZE)

servers: venv
	$(PY) -m load.servers

reference: venv
	$(PY) -m load reference $(CHAPTER)

# mutmut breaks the guarantee code the unit tests reach ([tool.mutmut] in pyproject.toml) and prints each
# chapter's score; then every deliberate bug (tests/deliberate_bugs/) must fail its named test
mutants: venv
	rm -rf mutants
	$(PY) -m mutmut run --max-children 2
	$(PY) -m tests.deliberate_bugs.scores
	$(PY) -m tests.deliberate_bugs.run

clean:
	rm -rf results var mutants
