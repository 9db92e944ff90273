"""Training and unlearning procedures: GAN and classifier training, cascaded GAN unlearning and its
baselines, classifier unlearning methods."""
