"""CHGNet fine-tuned on DFT relaxation trajectories (:mod:`topogen.models.chgnet.finetune`):
the force field of the funnel and the Stage III oracle when the config names it."""
