# Edge lab and migration: `make demo` runs one migration in the lab, `make test` runs every
# test. Both set up what they need (system packages, virtualenv, lab) and are idempotent.
# Run as root on a Debian 12 or 13 machine. LAB_HOSTS=N (1..4) sets the number of edge hosts,
# LAB_RELEASES the Debian releases of the system edges (sys1, sys2, ...: each its own Debian
# system with that release's Docker; "" for none).
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
VENV_STAMP := $(VENV)/.requirements.stamp
LAB_RELEASES ?= bookworm,trixie,sid

.NOTPARALLEL:
.PHONY: system venv lab lab-down demo test lint clean bench bench-full bench-fleet collection sanity follow

system:
	lab/install-system.sh

# Rebuilt only when requirements.txt or tests/sanity/requirements.txt changes. The second is
# downloaded into .venv/wheelhouse, which `make sanity` installs ansible-test's tools from offline.
$(VENV_STAMP): requirements.txt tests/sanity/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip download -q --no-deps -d $(VENV)/wheelhouse -r tests/sanity/requirements.txt
	touch $@

venv: $(VENV_STAMP)

lab: system venv
	lab/lab up $(if $(LAB_HOSTS),--hosts $(LAB_HOSTS)) --releases "$(LAB_RELEASES)"

lab-down:
	lab/lab down

# Starts the openface stand-in on edge1 unless an edge already runs it, then migrates it to
# the other host (with more than 2 hosts: DEMO_DESTINATION=edgeN). A client asks openface
# through the lab's proxy (10.77.0.1:19999) before and after: openface's post_migrate hook
# (inventory/lab/group_vars/all/catalog.yml) points the proxy at its new host.
demo: lab
	lab/service-proxy start openface --listen 10.77.0.1:19999
	$(VENV)/bin/ansible-playbook playbooks/deploy.yml -e service=openface
	-lab/service-proxy ask openface GET
	$(VENV)/bin/ansible-playbook migrate.yml -e service=openface $(if $(DEMO_DESTINATION),-e destination=$(DEMO_DESTINATION))
	lab/service-proxy status openface
	lab/service-proxy ask openface GET

# tests/run-all brings the lab up and runs the unit tests, sanity and the lab tests (the parts
# that share nothing at the same time).
test: system venv
	tests/run-all $(if $(LAB_HOSTS),--hosts $(LAB_HOSTS)) --releases "$(LAB_RELEASES)"

# A mobile user in the lab: the rulebook (rulebooks/follow_user.yml) takes handover events on a
# webhook, lab/mobile-user walks ap1 -> ap2 -> ap3 -> ap1 -> ap2 (4 handovers across 3 edges) with
# its own openface-32 instance, sending predicted and handover events, and prints per handover the
# time from the event to the first answer on the new edge, the longest gap and whether the state
# went on. FOLLOW_ARGS="--aps ap1,ap2 --user bob".
follow: lab
	pgrep -x mosquitto >/dev/null || mosquitto -d -p 1883
	mkdir -p reports
	ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg edge_migrate_project=$(CURDIR) PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
	  setsid $(VENV)/bin/ansible-rulebook -r rulebooks/follow_user.yml -i inventory/lab -S rulebooks/sources \
	  --vars rulebooks/follow_user.vars.yml -E edge_migrate_project > reports/follow-rulebook.log 2>&1 & \
	  rulebook=$$!; trap 'kill -- -$$rulebook' EXIT; \
	  for i in $$(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/5080) 2>/dev/null && break; sleep 1; done; \
	  lab/mobile-user walk $(FOLLOW_ARGS)

# The collection edge.migrate (build/build_collection.py maps this repository's layout into it):
# dist/edge-migrate-VERSION.tar.gz, for `ansible-galaxy collection install`.
collection: venv
	$(VENV)/bin/python build/build_collection.py --output-dir dist

# ansible-test sanity on the built collection, offline (build/sanity.py); about 30 s, 90 s the
# first time (it makes its tools' virtual environments under .venv/sanity-home).
sanity: venv
	$(VENV)/bin/python build/sanity.py

# Migration benchmark, in the lab: table on stdout, CSV, summary.md and plots under
# reports/bench/<UTC id>/. `make bench` is the quick set (openface stand-in 256 MB, unshaped and
# 100 Mbit/s, every strategy; 1024 MB at 100 Mbit/s, delta and rsync; 1 repeat), what the benchmark's
# acceptance checks need; `make bench-full` the whole matrix. More options:
# BENCH_ARGS="--repeats 3 --services openface-1024 --links 100mbit --strategies delta,rsync".
bench: lab
	$(VENV)/bin/python bench/bench.py $(BENCH_ARGS)

bench-full: lab
	$(VENV)/bin/python bench/bench.py --full $(BENCH_ARGS)

# Fleet benchmark: six services on edge1 migrated one after another, then edge1 evacuated
# with playbooks/fleet.yml; prints both times and their ratio, writes reports/bench/fleet-<UTC id>/.
# FLEET_BENCH_ARGS="--per-source 6 --per-destination 3 --state-scale 1.0".
bench-fleet: lab
	$(VENV)/bin/python bench/fleet_bench.py $(FLEET_BENCH_ARGS)

# Migration experiment, in the lab: for every service x link x strategy x repeat, a fresh
# service, playbooks/estimate.yml, then migrate.yml; predictions against the reports in
# reports/experiments/<UTC id>/ (results.csv, summary.md, plots). The small default (simple and
# openface-32, delta and rsync, unshaped, once) is what CI runs. More:
# EXPERIMENT_ARGS="-e services=openface-190,yolo-160 -e strategies=delta,rsync,seed-delta -e links=unshaped,100mbit -e repeats=3".
.PHONY: experiment
experiment: lab
	$(VENV)/bin/ansible-playbook playbooks/experiment.yml $(EXPERIMENT_ARGS)

lint: venv
	$(VENV)/bin/ruff check . lab/lab lab/service-proxy
	$(VENV)/bin/ansible-lint --profile production migrate.yml playbooks roles

# Takes the lab down and removes its image cache and logs, the virtualenv and tool caches.
clean:
	lab/lab down --purge
	rm -rf $(VENV) .pytest_cache .ruff_cache dist
