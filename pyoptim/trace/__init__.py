"""``pyoptim trace``: the optimizer-comparison pipeline as one command.

Data input -> min-max scaling (fitted on the training rows) -> no feature engineering
-> Input -> Dense ReLU -> Dense softmax trained with SGD (momentum), RMSprop and Adam from
identical initial weights through :mod:`pyoptim.keras` -> evaluation on the test rows
-> a few test rows followed through each trained model (the prediction trace).

Modules: :mod:`.data` (synthetic data, CSV loading, split, scaling), :mod:`.model` (the
network), :mod:`.optimizer_choice` (names -> optimizer classes, update path),
:mod:`.training` (the training loop, --compare-tf differences), :mod:`.observations`
(comments on the loss trend), :mod:`.report` (the text output), :mod:`.chart` (terminal
loss chart), :mod:`.prediction` (test rows through a trained model, checked against it),
:mod:`.prediction_text` (that section's text), :mod:`.plot` (PNG curves),
:mod:`.outputs` (--json), :mod:`.example` (the worked RMSprop step),
:mod:`.tensorflow_import` (quiet, checked import of Keras), :mod:`.errors` (bad input ->
exit 2, failed self-check -> exit 1), :mod:`.pipeline` (the stages in order, printed as
they run), :mod:`.cli` (argument parsing, entry point).

Importing this package does not import TensorFlow; the training modules do, when the
trace runs.
"""
