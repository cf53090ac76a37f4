# Two commands: `make demo` and `make test`. Both set everything up from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo_out

.PHONY: demo demo-headless test test-slow lint gui-deps clean bench

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Headless GUI tests need a virtual X display with OpenGL (napari's canvas).
gui-deps:
	@if command -v xvfb-run >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/dri ] ; then \
	  true ; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null ; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xinput0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 >/dev/null ; \
	else \
	  echo "GUI tests need: xvfb libgl1-mesa-dri (e.g. sudo apt-get install xvfb libgl1-mesa-dri)"; \
	fi

# With a display: napari with the sample data and the widgets docked. Without one: the
# headless pipeline (a noisy synthetic dataset, a short fine-tune of the shipped model on
# it, cleaning, a report). Nothing is written into the dataset.
demo: $(STAMP)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  $(PY) examples/napari_demo.py ; \
	else \
	  echo "No display found: running the headless pipeline instead (see README)." ; \
	  $(MAKE) --no-print-directory demo-headless ; \
	fi

demo-headless: $(STAMP)
	$(VENV)/bin/jcas make-dataset $(DEMO)/dataset --sequences 3 --frames 8 --noise mix --seed 0 --overwrite
	$(PY) examples/preview_dataset.py $(DEMO)/dataset --out $(DEMO)/preview.png
	$(VENV)/bin/jcas run $(DEMO)/dataset --out $(DEMO)/cleaned --epochs-warmup 1 --epochs-jcas 2 --overwrite
	$(VENV)/bin/jcas evaluate $(DEMO)/dataset/masks $(DEMO)/dataset/masks_clean > $(DEMO)/noisy_scores.json
	$(VENV)/bin/jcas evaluate $(DEMO)/cleaned/masks $(DEMO)/dataset/masks_clean > $(DEMO)/cleaned_scores.json
	@$(PY) -c "import json; n, c = (json.load(open('$(DEMO)/' + f + '_scores.json'))['dataset']['mean_dice'] for f in ('noisy', 'cleaned')); print(f'mean foreground Dice vs truth: given masks {n:.3f}, cleaned masks {c:.3f}')"
	@echo "Preview: $(DEMO)/preview.png"
	@echo "Report:  $(DEMO)/cleaned/report.md"

test: $(STAMP) gui-deps lint
	xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m pytest -q

test-slow: $(STAMP) gui-deps
	@# pytest exits 5 when no test is marked slow (none is at present)
	xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m pytest -q -m slow; \
	  rc=$$?; [ $$rc -eq 5 ] && echo "no slow tests at present" && rc=0; exit $$rc

# Benchmarks from a fresh clone: the bench extra (cleanlab), then each script, which
# checks its own imports before any work. Results print to stdout; see benchmarks/RESULTS.md.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/bench_quality.py --out benchmarks/quality.json
	cd benchmarks && ../$(PY) bench_core.py --configs small deeplab-r101 --repeats 3
	$(PY) benchmarks/bench_affinity.py

# Style: ruff's rule set (pyproject.toml) and its formatter; `make test` runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check jcas_napari tests examples benchmarks
	$(VENV)/bin/ruff format --check jcas_napari tests examples benchmarks

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
