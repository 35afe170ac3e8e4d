# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Run a module's runner in the controller's task worker when the task would run in this Python anyway: a module
process costs an interpreter start, the AnsiballZ payload and the imports (~0.7-0.9 CPU-s) for a few HTTPS calls.
The result is the module's, ``invocation`` included, with every ``no_log`` value and the kubeconfig dict's secrets masked."""

import json
import os
import sys
import warnings

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.meshfed.istio.plugins.module_utils.common import deps
from ansible_collections.meshfed.istio.plugins.module_utils.kube.kubeconfig import kubeconfig_secrets
from ansible_collections.meshfed.istio.plugins.module_utils.runners import run_module

try:  # ansible-core >= 2.19: the encoder Ansible itself uses to send module arguments
    from ansible.module_utils.common.json import Direction, get_module_encoder
    _ENCODER = get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE)
except ImportError:  # older ansible-core
    from ansible.module_utils.common.json import AnsibleJSONEncoder as _ENCODER


class _Done(Exception):
    """How exit_json / fail_json of the in-process module leave with the result (``args[0]``)."""


class InProcessModule:
    """The part of AnsibleModule a ``runners`` class uses: params, check_mode, _diff, warn, exit/fail_json."""

    def __init__(self, params, check_mode=False, diff=False):
        self.params, self.check_mode, self._diff = params, check_mode, diff
        self.warnings = []

    def warn(self, warning):
        self.warnings.append(warning)

    def exit_json(self, **result):
        raise _Done(result)

    def fail_json(self, msg, **result):
        raise _Done(dict(result, failed=True, msg=str(msg)))


def plain(value):
    """``value`` as the module would receive or return it: JSON types only (tags, tuples and sets gone)."""
    return json.loads(json.dumps(value, cls=_ENCODER))


def run_in_process(name, argument_spec, run_class, args, check_mode=False, diff=False):
    """The module's result for ``args``: validated, run and masked as MeshfedModule would (kubeconfig secrets included)."""
    params = plain(dict(args))
    validation = ArgumentSpecValidator(argument_spec).validate(params)
    params.update(validation.validated_parameters)
    module = InProcessModule(params, check_mode=check_mode, diff=diff)
    for alias in validation._warnings:
        module.warn("Both option {option} and its alias {alias} are set.".format(**alias))
    try:
        if validation.errors.errors:
            msg = validation.errors.msg
            if isinstance(validation.errors[0], UnsupportedError):
                msg = "Unsupported parameters for ({0}) module: {1}".format(name, msg)
            module.fail_json(msg=msg)
        with warnings.catch_warnings():  # e.g. urllib3's InsecureRequestWarning: a module's stderr, unseen
            warnings.simplefilter("ignore")
            run_module(module, run_class)
        result = dict(failed=True, msg="%s returned without exit_json or fail_json" % run_class.__name__)
    except _Done as done:
        result = done.args[0]
    except Exception as exc:  # a bug: a module process would die with a traceback; say what, masked
        result = dict(failed=True, msg="%s: %s" % (type(exc).__name__, exc))
    no_log = set(validation._no_log_values) | kubeconfig_secrets(params.get("kubeconfig"))
    result = dict(result, invocation={"module_args": params})
    if module.warnings:
        result["warnings"] = list(module.warnings)
    if validation._deprecations:
        result["deprecations"] = [dict(d) for d in validation._deprecations]
    return plain(remove_values(result, no_log))


class InProcessAction(ActionBase):
    """Action plugin of a module whose runner may run in the worker: ``argument_spec`` (a callable), ``run_class``."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True

    argument_spec = run_class = None

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self.in_process(task_vars or {}):
            result.update(run_in_process(self._task.action, self.argument_spec(), self.run_class, self._task.args,
                                         check_mode=bool(self._task.check_mode), diff=bool(self._task.diff)))
            return result
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def in_process(self, task_vars):
        """True when the module would run on the controller, as this user, in this Python, unchanged env."""
        if getattr(self._connection, "transport", None) != "local":
            return False
        if self._play_context.become or self._task.async_val or any(self._task.environment or ()) or deps.MISSING:
            return False
        interpreter = task_vars.get("ansible_python_interpreter")
        return interpreter is not None and same_python(self._templar.template(interpreter))


def same_python(interpreter):
    """Whether ``interpreter`` (a path) is the Python this worker runs in."""
    if not isinstance(interpreter, str) or not interpreter or not os.path.isabs(interpreter):
        return False
    if os.path.normpath(interpreter) == os.path.normpath(sys.executable):
        return True
    # the same binary through a symlink, and the same virtualenv (or none on both sides)
    here = os.path.realpath(sys.prefix) if sys.prefix != sys.base_prefix else None
    root = os.path.dirname(os.path.dirname(interpreter))
    there = os.path.realpath(root) if os.path.exists(os.path.join(root, "pyvenv.cfg")) else None
    return os.path.realpath(interpreter) == os.path.realpath(sys.executable) and there == here
