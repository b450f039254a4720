"""The gen2 case study: why the user's second-generation training collapsed.

Apart from the pipeline (phases 3-5, evaluation, candidates), which never imports it:
``ablations`` (gen3 with one gen2 setting switched back on, torch-free for the Snakefile)
-> ``ties`` (cliffs and tied top scores per dtype) -> ``user_history`` (the user's own
history.json) -> ``diagnose`` (per-run evidence) -> ``compare`` (gen2 / gen3 / ablations
with intervals) -> ``answers`` (the six written answers). Its rules are
``workflow/rules/gen2.smk``, included when the config has a ``compare`` section.
"""
