"""The latency study's configurations and report (the runs themselves are `make latency-study`)."""

from cliprt_ros import latency_study
import pytest


def _record(success, steps, holds=None, latency=None):
    record = {'success': success, 'steps': steps}
    if holds is not None:
        record['realtime'] = {'steps': steps, 'holds': holds, 'overruns': 1,
                              'chunk_latency_ms': {'p50': latency, 'p99': latency},
                              'achieved_real_time_factor': 0.2}
    return record


def test_configurations_cover_lockstep_and_every_aggregation_and_latency():
    args = latency_study.build_parser().parse_args([
        '--checkpoint', 'x.pt', '--latencies', '0,0.2', '--aggregations', 'latest,ensemble',
        '--real-time-factor', '0.5'])
    runs = dict(latency_study.configurations(args))
    assert list(runs) == ['lockstep', 'realtime-latest-0ms', 'realtime-latest-200ms',
                          'realtime-ensemble-0ms', 'realtime-ensemble-200ms']
    assert runs['lockstep'] == []
    flags = runs['realtime-ensemble-200ms']
    assert flags[flags.index('--aggregation') + 1] == 'ensemble'
    assert flags[flags.index('--added-latency') + 1] == '0.2'
    assert flags[flags.index('--real-time-factor') + 1] == '0.5' and '--publish-clock' in flags


def test_report_rows_table_and_plot(tmp_path):
    rows = [latency_study.summarize('lockstep', [_record(True, 100), _record(False, 300)]),
            latency_study.summarize('realtime-latest-0ms',
                                    [_record(True, 120, holds=6, latency=0.0)]),
            latency_study.summarize('realtime-latest-200ms',
                                    [_record(False, 300, holds=150, latency=200.0)])]
    assert rows[0]['successes'] == 1 and rows[0]['episodes'] == 2 and 'held_fraction' not in rows[0]
    assert rows[2]['held_fraction'] == 0.5 and rows[2]['chunk_latency_p50_ms'] == 200.0
    table = latency_study.report_markdown(rows)
    assert '| lockstep | 1/2 |' in table and '| realtime-latest-200ms | 0/1 |' in table
    assert '50.0%' in table and '200 ms' in table
    latency_study.plot(rows, tmp_path / 'latency.png')
    assert (tmp_path / 'latency.png').stat().st_size > 1000


def test_bad_latencies_are_a_user_error(capsys):
    assert latency_study.main(['--checkpoint', 'x.pt', '--latencies', '0,fast',
                               '--output', '/nonexistent/never']) == 2
    assert 'bad --latencies' in capsys.readouterr().err


@pytest.mark.parametrize('argv', [[], ['--episodes', 'many']])
def test_missing_or_bad_flags_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        latency_study.main(argv)
    assert exc.value.code == 2
