"""Evaluators: numbers about an adapter (MIA metrics, perplexity, adherence, exposure), arrays in where possible."""
