"""What a run counts and shows while it runs: the funnel (every counter's name and the
numbers a run publishes, `funnel`) and the live display (`progress`)."""
