"""`subprocess.Popen` and `run` for the Python processes the tests start (`python [-u] -m freeze_tui …`,
`python -c CODE …`, `python SCRIPT …`), forked from a server that imported torch and transformers once.

Why: importing torch and transformers is ~5 of the ~5.7 CPU-s a tiny run process costs, and the suite
starts dozens of them on a 2-core box. Each test process is still a process of its own (its own pid,
signals, exit code, pipes, working folder, environment, session), running the module, code or script
as the interpreter would (`runpy`, the standard streams rebuilt on its descriptors, threads joined and
atexit handlers run at exit); only the two imports were done before the fork. The server is
multiprocessing's forkserver, which never ran torch before forking.

A forked process starts its own Python children the same way (torch's elastic launcher starts a
launch's ranks with `subprocess.Popen`): they are forked from the same server, and are its children, not
the launcher's (tests find a launch's ranks by their environment, not their parent).

Falls back to a real interpreter where a fork could differ from one: interpreter flags other than -u,
an environment whose import-time variables (OMP_*, HF_*, TORCH*, PYTHON*, …) differ from the server's,
`preexec_fn`, `pass_fds`, users and groups (FREEZE_TUI_FORKED_LOG=PATH lists each fallback and why).
`python -m freeze_tui` start-up itself stays covered by the tests that start real interpreters
(test_cli_errors, test_detach's background run, the offline-variable checks of test_liveness)."""

from __future__ import annotations

import atexit
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from multiprocessing import forkserver, process, reduction

PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.gpt2.modeling_gpt2",
    "transformers.models.llama.modeling_llama",
)
# variables read while those modules import (thread pools, hub and offline settings, the import path)
_AT_IMPORT = ("OMP_", "MKL_", "KMP_", "GOMP_", "TORCH", "PYTORCH", "CUDA", "HF_", "TRANSFORMERS", "TOKENIZERS",
              "PYTHON", "LD_", "XDG_CACHE", "HOME", "LANG", "LC_")  # fmt: skip
# ... except these, read when they are used: torchrun's (a launch, a process group) and inductor's cache
# folder (set by torch itself in a process that compiled, e.g. a test in the worker)
_AT_RUN = ("TORCHELASTIC_", "TORCH_NCCL_", "TORCHINDUCTOR_CACHE_DIR", "PYTHONPATH")
SERVER_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
_lock = threading.Lock()
# {"address", "alive_fd", "env", "at_import", "registry"} once started here or inherited from a parent
_server: dict | None = None


def _at_import(env: dict) -> dict:
    """The variables that must be as the server had them. huggingface_hub reads HF_HUB_OFFLINE or
    TRANSFORMERS_OFFLINE into one setting: compared as one."""
    offline = env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or ""
    kept = {k: v for k, v in env.items() if k.startswith(_AT_IMPORT) and not k.startswith(_AT_RUN)}
    kept.pop("TRANSFORMERS_OFFLINE", None)
    return {**kept, "HF_HUB_OFFLINE": offline.upper() in ("1", "ON", "YES", "TRUE")}


def _start_server() -> dict:
    """The server, started on first use with SERVER_ENV set (its children inherit what it imported)."""
    global _server
    with _lock:
        if _server is None:
            forkserver.set_forkserver_preload(list(PRELOAD))
            saved = dict(os.environ)
            os.environ.update(SERVER_ENV)
            try:
                forkserver.ensure_running()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            env = {**saved, **SERVER_ENV}
            server = forkserver._forkserver
            _server = {"address": server._forkserver_address, "alive_fd": server._forkserver_alive_fd}
            _server |= {"env": env, "at_import": _at_import(env), "registry": tempfile.mkdtemp(prefix="forked-")}
            atexit.register(shutil.rmtree, _server["registry"], ignore_errors=True)
        return _server


def server_env() -> dict[str, str]:
    """An environment this module forks for: the server's (as it will be, before it starts)."""
    return dict(_server["env"]) if _server else {**os.environ, **SERVER_ENV}


def _expected_at_import() -> dict:
    return _at_import(server_env()) if _server is None else _server["at_import"]


def _note_fallback(args, program, env: dict) -> None:
    """FREEZE_TUI_FORKED_LOG=PATH: each real interpreter started, with why, appended to PATH (a fallback
    costs ~5 CPU-s and is otherwise silent)."""
    path = os.environ.get("FREEZE_TUI_FORKED_LOG")
    if path and args and str(args[0]) == sys.executable:
        mine, expected = _at_import(env), _expected_at_import()
        differ = sorted(k for k in mine.keys() | expected.keys() if mine.get(k) != expected.get(k))
        why = f"import-time variables differ: {differ}" if program else "not a plain python command"
        with open(path, "a") as log:
            log.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '?')}: {str(args)[:120]}: {why}\n")


def _program(args) -> tuple[bool, str, str, list[str]] | None:
    """(unbuffered, "-m"/"-c"/"script", module/code/path, argv) for `python [-u] …`, else None."""
    if isinstance(args, (str, bytes)) or not args or str(args[0]) != sys.executable:
        return None
    args = [str(a) for a in args[1:]]
    unbuffered = bool(args) and args[0] == "-u"
    args = args[1:] if unbuffered else args
    if not args or (args[0].startswith("-") and args[0] not in ("-m", "-c")):
        return None
    if args[0] in ("-m", "-c"):
        return (unbuffered, args[0], args[1], args[2:]) if len(args) > 1 else None
    return unbuffered, "script", args[0], args[1:]


class _Fd:
    """A descriptor sent to the forked child (multiprocessing passes it with SCM_RIGHTS)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self):
        return _received_fd, (reduction.DupFd(self.fd),)


def _received_fd(dup) -> int:
    return dup.detach()


def _std_streams(unbuffered: bool) -> None:
    """sys.stdin/stdout/stderr rebuilt on descriptors 0-2 as a starting interpreter builds them, in the
    encoding the server's interpreter chose at its start (LANG, LC_* and PYTHONIOENCODING are compared)."""
    import io

    encoding = sys.__stdout__.encoding if sys.__stdout__ is not None else "utf-8"

    def writer(fd: int, errors: str, line_buffering: bool):
        raw = io.FileIO(fd, "w", closefd=False)
        if unbuffered:  # -u: no buffer under the text layer
            return io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True)
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=line_buffering)

    reader = io.BufferedReader(io.FileIO(0, "r", closefd=False))
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(reader, encoding=encoding)
    sys.stdout = sys.__stdout__ = writer(1, "strict", os.isatty(1))
    sys.stderr = sys.__stderr__ = writer(2, "backslashreplace", True)


def _take_terminal() -> None:
    """A new session whose controlling terminal is standard input's (what pty.fork gives its child)."""
    import fcntl
    import termios

    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _become_client(server: dict) -> None:
    """In a forked child: later Popen calls fork from the same server (multiprocessing gave the child the
    server's "alive" descriptor; the address is ours to set), and so do `subprocess.Popen` calls of the
    libraries it runs (torch's elastic launcher imports Popen by name when it first starts ranks; the
    server did not import it)."""
    global _server
    client = forkserver._forkserver
    client._forkserver_address = server["address"]
    client.ensure_running = lambda: None  # type: ignore[method-assign]  # the server is not our child to check
    _server = {**server, "alive_fd": client._forkserver_alive_fd}
    subprocess.Popen = Popen  # type: ignore[misc]


def _exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    print(stop.code, file=sys.stderr)
    return 1


def _child(program, cwd, env, fds, session, server) -> None:
    """In the forked process: descriptors, session, folder and environment as asked; run the program;
    exit as the interpreter would (threads joined, atexit handlers run, streams flushed)."""
    import runpy
    import signal
    import traceback

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    if session == "terminal":
        _take_terminal()
    elif session:
        os.setsid()
    unbuffered, kind, what, argv = program
    _std_streams(unbuffered)
    if cwd is not None:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    listed = os.path.join(server["registry"], str(os.getpid()))
    with open(f"{listed}.part", "w") as part:
        json.dump(env, part)
    os.replace(f"{listed}.part", listed)  # whole when read
    _become_client(server)
    code = 0
    try:
        if kind == "-m":
            sys.argv = ["-m", *argv]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(what, run_name="__main__", alter_sys=True)
        elif kind == "-c":
            sys.argv = ["-c", *argv]
            sys.path.insert(0, "")
            exec(compile(what, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:
            sys.argv = [what, *argv]
            sys.path.insert(0, os.path.dirname(os.path.abspath(what)))
            runpy.run_path(what, run_name="__main__")
    except SystemExit as stop:
        code = _exit_code(stop)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: the interpreter says nothing either
            stream.flush()
    if code == -signal.SIGINT:  # an uncaught Ctrl-C ends the interpreter by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


class Popen(subprocess.Popen):
    """subprocess.Popen whose Python children are forked from the preloaded server (see the module)."""

    _forked: multiprocessing.process.BaseProcess | None = None

    def __init__(self, *args, controlling_terminal: bool = False, **kwargs) -> None:
        """`controlling_terminal`: a new session whose controlling terminal is stdin (a pty's follower),
        as pty.fork sets up; SIGHUP reaches it when the terminal goes away."""
        self._terminal = controlling_terminal
        if controlling_terminal:
            kwargs["preexec_fn"] = _take_terminal  # for a real interpreter; a forked child does it itself
        super().__init__(*args, **kwargs)

    def _execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                       creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                       restore_signals, gid, gids, uid, umask, start_new_session, process_group):  # fmt: skip
        forkable = preexec_fn is None or (self._terminal and preexec_fn is _take_terminal)
        plain = not (shell or executable or pass_fds or uid is not None or gid is not None or gids is not None)
        program = _program(args) if forkable and plain and process_group < 0 and umask < 0 else None
        child_env = {os.fsdecode(k): os.fsdecode(v) for k, v in (os.environ if env is None else env).items()}
        if program is None or _at_import(child_env) != _expected_at_import():
            _note_fallback(args, program, child_env)
            return super()._execute_child(
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo, creationflags, shell,
                p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite, restore_signals,
                gid, gids, uid, umask, start_new_session, process_group,
            )  # fmt: skip
        server = _start_server()
        # an inherited stream is this process's descriptor now (pytest may have redirected it)
        fds = [_Fd(std if fd == -1 else fd) for std, fd in enumerate((p2cread, c2pwrite, errwrite))]
        session = "terminal" if self._terminal else start_new_session
        where = None if cwd is None else os.fspath(cwd)
        shared = {key: server[key] for key in ("address", "at_import", "registry", "env")}
        self._forked = multiprocessing.get_context("forkserver").Process(
            target=_child, args=(program, where, child_env, fds, session, shared)
        )
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")  # the child runs `program`, not our main
        try:
            self._forked.start()
        finally:
            sys.modules["__main__"] = main
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)
        # not multiprocessing's to join or end at exit: a process left running outlives us, as Popen's do
        process._children.discard(self._forked)  # type: ignore[attr-defined]
        self.pid = self._forked.pid
        self._child_created = True

    def _internal_poll(self, _deadstate=None, **_):
        if self._forked is None:
            return super()._internal_poll(_deadstate)
        if self.returncode is None:
            with contextlib.suppress(ImportError):  # Popen.__del__ at interpreter shutdown
                self.returncode = self._forked.exitcode
        return self.returncode

    def _wait(self, timeout):
        if self._forked is None:
            return super()._wait(timeout)
        if self.returncode is None:
            self._forked.join(timeout)
            if self._forked.exitcode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.returncode = self._forked.exitcode
        return self.returncode


def run(*popenargs, timeout=None, check=False, input=None, capture_output=False, **kwargs):
    """subprocess.run over this module's Popen."""
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with Popen(*popenargs, **kwargs) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.poll()
        if check and code:
            raise subprocess.CalledProcessError(code, proc.args, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(proc.args, code, stdout, stderr)


def environ(pid: int) -> dict[str, str]:
    """The environment process `pid` started with: a forked process's as it was given (its
    /proc/PID/environ is the server's), another's from /proc; {} for a process gone or not ours."""
    if _server is not None:
        with contextlib.suppress(OSError), open(os.path.join(_server["registry"], str(pid))) as listed:
            return json.load(listed)
    try:
        raw = open(f"/proc/{pid}/environ", "rb").read()  # noqa: SIM115
    except OSError:
        return {}
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}
