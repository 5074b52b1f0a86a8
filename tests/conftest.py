pytest_plugins = [
    "tests.plugins.actors",
    "tests.plugins.gemini",
    "tests.plugins.stripe",
    "tests.plugins.pipeline",
    "tests.plugins.cluster",
]
