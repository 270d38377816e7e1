"""On a failed portal test, the report shows what the browser had: its URL and the start of the page."""
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    world = getattr(item, "funcargs", {}).get("world")
    if report.when == "call" and report.failed and world:
        page = world["page"]
        try:
            content = page.content()
        except Exception as e:  # the page may be gone; the report keeps the test's own failure
            content = f"(no content: {e})"
        report.sections.append(("the browser's page", f"{page.url}\n{content[:2000]}"))
    return report
