"""Development-only endpoints: the card preview page and the benchmark floor (never registered in
production)."""
