"""What both faces (the terminal app and the notebook panels) share, with no UI toolkit.

=============  ==================================================================
``launch``     the launch controller: preset -> form values, validate -> (spec, field
               errors), run or study, run keys, the study thread
``forms``      the generated form's layout, parsing and previews
``views``      view-models: run rows and boards, compare items, mean ± std tables
=============  ==================================================================

The faces only draw these; nothing here imports Textual or ipywidgets, and nothing
heavy loads at import time (the terminal app paints before torch loads).
"""
