"""Speed benchmarks (not tests): each prints one JSON object with its figures."""
