"""The executor's own integration cases, unchanged, on the Kubernetes engine.

Every case below is imported from `tests/integration` and runs here with this folder's
`executor` / `make_executor` fixtures: the real runner over the official client's exec websocket,
against the API double whose pods are hardened Docker containers (or a real cluster under
`make test-k8s`). Cases that look at Docker's own view of a container, or at what only Docker
can express (a per-container pids limit, `lo` as the only interface), are not here; their
Kubernetes counterparts are in `test_exec_websocket.py`.
"""

from __future__ import annotations

import pytest

from tests.integration.test_commands import (
    test_background_process_returns_promptly_and_is_killed_after,
    test_cancelled_call_kills_the_command,
    test_commands_run_as_coderunner_in_workspace_with_tools_importable,
    test_endless_output_is_stopped_without_waiting_for_timeout,
    test_exit_code_and_both_streams,
    test_non_utf8_output_becomes_replacement_characters,
    test_output_is_capped_with_a_marker,
    test_process_ignoring_sigterm_is_killed_on_timeout,
    test_timeout_kills_whole_tree_and_session_survives,
)
from tests.integration.test_files import (
    test_per_file_limit_refuses_uploads_and_stops_commands,
    test_quota_refuses_writes_and_keeps_existing_files,
    test_read_file_offset_and_line_count,
    test_symlinks_leading_out_are_refused,
    test_tools_and_skills_are_read_only,
    test_workspace_downloads_as_a_zip_without_symlinked_files,
    test_write_is_byte_exact_whatever_the_name_and_content,
    test_writes_outside_workspace_are_refused,
)
from tests.integration.test_hardening import (
    test_host_environment_is_not_visible_inside,
    test_memory_limit_kills_with_a_clear_message,
    test_no_capabilities_no_new_privileges_and_non_root,
    test_root_filesystem_is_read_only_and_no_docker_socket,
)
from tests.integration.test_runner import (
    test_a_runner_that_lies_after_taking_a_command_is_stopped,
    test_command_that_kills_the_runner_is_stopped_and_not_rerun,
    test_commands_run_through_the_runner,
    test_output_streams_before_the_command_ends,
    test_plain_exec_path_still_works_and_python_says_state_is_not_kept,
    test_python_errors_show_a_short_traceback_and_keep_state,
    test_python_state_persists_between_calls,
    test_python_timeout_restarts_the_interpreter_and_says_state_was_lost,
    test_reset_python_forgets_everything,
    test_sandbox_code_cannot_open_the_runners_pipes,
    test_stopping_a_stream_kills_the_command,
    test_timeouts_kill_the_tree_through_the_runner,
)

pytestmark = pytest.mark.docker

__all__ = [
    "test_a_runner_that_lies_after_taking_a_command_is_stopped",
    "test_background_process_returns_promptly_and_is_killed_after",
    "test_cancelled_call_kills_the_command",
    "test_command_that_kills_the_runner_is_stopped_and_not_rerun",
    "test_commands_run_as_coderunner_in_workspace_with_tools_importable",
    "test_commands_run_through_the_runner",
    "test_endless_output_is_stopped_without_waiting_for_timeout",
    "test_exit_code_and_both_streams",
    "test_host_environment_is_not_visible_inside",
    "test_memory_limit_kills_with_a_clear_message",
    "test_no_capabilities_no_new_privileges_and_non_root",
    "test_non_utf8_output_becomes_replacement_characters",
    "test_output_is_capped_with_a_marker",
    "test_output_streams_before_the_command_ends",
    "test_per_file_limit_refuses_uploads_and_stops_commands",
    "test_plain_exec_path_still_works_and_python_says_state_is_not_kept",
    "test_process_ignoring_sigterm_is_killed_on_timeout",
    "test_python_errors_show_a_short_traceback_and_keep_state",
    "test_python_state_persists_between_calls",
    "test_python_timeout_restarts_the_interpreter_and_says_state_was_lost",
    "test_quota_refuses_writes_and_keeps_existing_files",
    "test_read_file_offset_and_line_count",
    "test_reset_python_forgets_everything",
    "test_root_filesystem_is_read_only_and_no_docker_socket",
    "test_sandbox_code_cannot_open_the_runners_pipes",
    "test_stopping_a_stream_kills_the_command",
    "test_symlinks_leading_out_are_refused",
    "test_timeout_kills_whole_tree_and_session_survives",
    "test_timeouts_kill_the_tree_through_the_runner",
    "test_tools_and_skills_are_read_only",
    "test_workspace_downloads_as_a_zip_without_symlinked_files",
    "test_write_is_byte_exact_whatever_the_name_and_content",
    "test_writes_outside_workspace_are_refused",
]
