"""Stable activity names, shared by workers and workflows.

They are public: they appear in every history, in the Temporal UI and in
retry-policy configuration. Renaming one breaks replay of running workflows.
"""

CALL_AGENT = "call_agent"
CALL_TOOL = "call_tool"
LOAD_TEAM_SPEC = "load_team_spec"
ADMIT_CALL = "admit_call"
SETTLE_CALL = "settle_call"
RECORD_RUN_COST = "record_run_cost"
LOAD_GOLD_SET = "load_gold_set"
EVALUATION_BASELINE = "evaluation_baseline"
DELIVER_WEBHOOK = "deliver_webhook"
PUBLISH_RUN_EVENT = "publish_run_event"
END_RUN_SLOT = "end_run_slot"
SUBMIT_BATCH_CALL = "submit_batch_call"
POLL_BATCH_CALL = "poll_batch_call"
FETCH_BATCH_RESULT = "fetch_batch_result"
CANCEL_BATCH_CALL = "cancel_batch_call"
