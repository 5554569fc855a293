"""What the notebooks run: one module per notebook, on the protocol the table experiments share.

``notebook.start`` is every notebook's preamble; ``zero_shot`` (notebook 01), ``fair_ablations``,
``fair_plan`` and ``fair_cost`` (02, 04), ``cdfsl_episodes`` (03), ``tsne_confusion`` (04); ``protocol`` and ``job_pool``
run cached jobs in bulk. Only this layer reads profile settings.
"""
from lib.experiments import (
                             cdfsl_episodes,
                             fair_ablations,
                             fair_cost,
                             fair_plan,
                             job_pool,
                             notebook,
                             protocol,
                             tsne_confusion,
                             zero_shot,
)
