"""The dashboard's pages (:mod:`mecharena.server.ui` serves them), one module per page family.

:mod:`~mecharena.server.dashboard.runs` (run directories, a run's comparison, a recorded ledger),
:mod:`~mecharena.server.dashboard.exploits` (the exploit library and one exploit's replayed trace) and
:mod:`~mecharena.server.dashboard.live` (the live referee) each gather a page's data into a plain context and
render its Jinja2 template from ``templates/``; :mod:`~mecharena.server.dashboard.render` holds what they share
(the template environment, the error page, number formatting, the market picker's input, one recorded round).
"""
