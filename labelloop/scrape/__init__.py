"""labelloop.scrape."""
