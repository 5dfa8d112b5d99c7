"""Shared pytest set-up: tests marked lab_lifecycle (they kill the lab's daemons, take the
lab down and bring it up again) run after every other test, so the others find the lab up."""


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: 1 if item.get_closest_marker("lab_lifecycle") else 0)
