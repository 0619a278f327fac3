"""``conftest.import_optional``: a test that needs an optional dependency skips, with the reason, on
any failure to import it, not only ImportError: a torchvision built for another torch raises a
RuntimeError at import, which ``pytest.importorskip`` lets through as a failure."""

from __future__ import annotations

import sys
import textwrap

import pytest
from conftest import import_optional


@pytest.fixture
def fake_modules(tmp_path, monkeypatch):
    """A folder on sys.path with a module that raises RuntimeError at import, one that raises OSError,
    and one that imports; each is forgotten by sys.modules afterwards."""
    (tmp_path / "broken_like_torchvision.py").write_text(textwrap.dedent("""
        raise RuntimeError("operator torchvision::nms does not exist")
    """))
    (tmp_path / "wheel_for_another_cpu.py").write_text("raise OSError('libfoo.so: cannot open shared object file')\n")
    (tmp_path / "fine_module.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("broken_like_torchvision", "wheel_for_another_cpu", "fine_module"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name, error, message", [
    ("broken_like_torchvision", "RuntimeError", "operator torchvision::nms does not exist"),
    ("wheel_for_another_cpu", "OSError", "cannot open shared object file"),
    ("no_such_module_anywhere", "ModuleNotFoundError", "No module named 'no_such_module_anywhere'"),
])
def test_any_failure_to_import_skips_with_the_module_and_the_exception_in_the_reason(fake_modules, name, error,
                                                                                     message):
    with pytest.raises(pytest.skip.Exception) as skipped:
        import_optional(name)
    reason = str(skipped.value)
    assert reason.startswith(f"{name} cannot be imported ({error}: ") and message in reason
    assert reason.endswith("; install it")  # a module without known advice still says what to do


def test_the_reason_says_how_to_install_a_known_optional_dependency(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # None in sys.modules: the import raises ImportError
    with pytest.raises(pytest.skip.Exception) as skipped:
        import_optional("torchvision")
    assert "torchvision cannot be imported (ModuleNotFoundError: " in str(skipped.value)
    assert "from the same index" in str(skipped.value)


def test_a_module_that_imports_is_returned(fake_modules):
    assert import_optional("fine_module").VALUE == 42


def test_a_module_level_call_skips_the_whole_module_with_the_reason(fake_modules, tmp_path, capsys):
    """Called at module level (as tests/test_openvino.py does), the skip covers the module: collected, not failed."""
    test_file = tmp_path / "test_uses_broken.py"
    test_file.write_text(textwrap.dedent("""
        from conftest import import_optional

        broken = import_optional("broken_like_torchvision")

        def test_never_runs():
            raise AssertionError("the module should have been skipped")
    """))
    result = pytest.main(["-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(test_file)])
    out = capsys.readouterr().out
    assert result == pytest.ExitCode.NO_TESTS_COLLECTED, out  # skipped at collection: no test ran, none failed
    assert "1 skipped in" in out and " failed" not in out and " error" not in out
    assert "broken_like_torchvision cannot be imported (RuntimeError: operator torchvision::nms does not exist)" in out
