"""Layer 2: fitting a head on labelled queries.

- ``labels``: r_det, r_prob and r_trans labels from both models' qualities, and the t* search.
- ``checks``: validation of training inputs.
- ``logistic``: the exact L2 logistic head (numpy Newton, no torch).
- ``torch_common``, ``torch_head``, ``fine_tune``: the MLP head trained with torch, and the
  encoder fine-tuned together with it (the ``train`` extra).

May import: layers 0-1; never ``evaluation``, ``routing`` or anything above.
"""
