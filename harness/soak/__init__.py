"""The soak's logic, checked by the tests: its command line, samples, report and verdict
(`bench/soak.py` runs it against a real `meshlens serve`)."""
