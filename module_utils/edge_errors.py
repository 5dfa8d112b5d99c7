"""The error every migration helper raises: what failed, in words a person can act on,
and the command, exit code and error output behind it (for fail_json)."""


class EdgeError(Exception):
    def __init__(self, msg, cmd=None, rc=None, stderr=None):
        super().__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stderr = stderr if stderr is not None else msg
