"""A local server that speaks the Gemini API's image generation, batch and file endpoints.

Standalone: it never imports Django or the project's apps. See docs/emulators-gemini.md.
"""
