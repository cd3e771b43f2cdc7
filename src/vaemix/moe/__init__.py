"""Mixture-of-experts regression with clustering gates (Singh et al. 2018, sec. 4-8).

- :mod:`vaemix.moe.model`: the gated mixture (VAE, softmax and reference gates), its
  likelihood, the closed-form affine experts and the start from the clustering front end;
- :mod:`vaemix.moe.gmm_gate`: the Gaussian-mixture gate fitted by EM (Xu, Jordan & Hinton 1995);
- :mod:`vaemix.moe.run`: one ``moe@`` / ``moe_plain@`` stage, over seeds;
- :mod:`vaemix.moe.report`: Singh et al.'s Table 1 with ours, and the figures of the gates.
"""
