"""Live rooms: many people, the AI coach on @coach."""
