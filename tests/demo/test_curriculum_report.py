"""The committed curriculum results are complete and the report turns them into the docs' table and plot."""

import importlib.util
import json

import pytest


@pytest.fixture(scope='module')
def experiment(repo):
    path = repo / 'benchmarks' / 'curriculum_experiment.py'
    spec = importlib.util.spec_from_file_location('curriculum_experiment', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_hold_every_run_and_set(repo, experiment):
    data = json.loads((repo / 'benchmarks/results/curriculum.json').read_text())
    assert {'device', 'date', 'results'} <= set(data)
    for run in experiment.RUNS:
        for s in experiment.EVAL_SETS:
            for k in (1, 3):
                assert 0.0 <= data['results'][f'{run}/{s}/top{k}'] <= 1.0


def test_report_prints_the_docs_table_and_draws_the_plot(repo, experiment, tmp_path, capsys):
    png = tmp_path / 'c.png'
    results = repo / 'benchmarks/results/curriculum.json'
    experiment.main(['report', '--results', str(results), '--png', str(png)])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ') and '%' in line]
    assert len(table) == 3 and png.stat().st_size > 10_000
    doc = (repo / 'docs/curriculum.md').read_text()
    for row in table:  # the numbers in the docs are the measured ones
        for cell in row.split('|')[2:-1]:
            assert cell.strip() in doc
