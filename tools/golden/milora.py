"""MiLoRA's init on a PEFT LoRA layer: PEFT's `pissa_init` (peft 0.21,
tuners/lora/layer.py) with the r *smallest* singular components instead of
the largest, as the MiLoRA authors' code changes it. PEFT has no MiLoRA;
this is the reference lrscape's `milora` is checked against.
"""

import torch
from peft.utils.other import transpose


def milora_init(layer, adapter="default"):
    r = layer.r[adapter]
    scaling = layer.scaling[adapter]
    base = layer.get_base_layer()
    weight = transpose(base.weight.to(torch.float32), layer.fan_in_fan_out)
    # W = V S Uh in PEFT's naming ([out, in]).
    V, S, Uh = torch.linalg.svd(weight.data, full_matrices=False)
    Vr = V[:, -r:]
    Sr = S[-r:] / scaling
    Uhr = Uh[-r:]
    lora_A = torch.diag(torch.sqrt(Sr)) @ Uhr
    lora_B = Vr @ torch.diag(torch.sqrt(Sr))
    layer.lora_A[adapter].weight.data = lora_A
    layer.lora_B[adapter].weight.data = lora_B
    weight = weight.data - scaling * lora_B @ lora_A
    base.weight.data = transpose(weight, layer.fan_in_fan_out)
