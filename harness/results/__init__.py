"""What a run's results.json becomes: the report (report, glue_table), comparisons of runs (compare),
and the CI gate (check)."""
