"""Image model providers. Import the adapter from `generation.providers.gemini`; the plain
types and retry helpers import without google-genai. The model catalog is `core.catalog`."""
