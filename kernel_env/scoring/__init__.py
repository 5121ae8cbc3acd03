"""What a verdict is worth: the result record, the hack codes, the feedback text, the rewards.

Pure data and arithmetic over ``EvalResult``: no torch, no processes, so trainers and dashboards can
read results without the evaluator.
"""
