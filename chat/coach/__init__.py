"""The AI coach: providers, prompts, coaching analysis, the reply pipeline."""
