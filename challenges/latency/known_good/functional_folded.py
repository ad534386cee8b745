"""Known good: a functional rewrite. Every BatchNorm is folded by hand into the weights and bias
of the convolution before it (computed in the model's float64, then rounded to float32 once),
the depthwise loops become grouped `F.conv2d` calls, the normalisation and the temperature
are plain tensor arithmetic, and the forward pass is a closure over plain tensors: no
nn.Module, no autograd (inference mode), default (contiguous) layout."""

import torch
import torch.nn.functional as F


def fold(weight, bn):
    """Conv weight [O, I, k, k] followed by BatchNorm (eval) -> (weight, bias) of one conv, float32."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    return (weight * scale.view(-1, 1, 1, 1)).detach().float().contiguous(), bias.detach().float()


def optimize(model, example_input):
    model = model.eval()
    device = example_input.device
    p = {}
    p["stem"] = fold(model.stem[0].weight, model.stem[1])
    p["down1"] = fold(model.down1[0].weight, model.down1[1])
    p["down2"] = fold(model.down2[0].weight, model.down2[1])
    for name in ("block1", "block2", "block4"):
        block = getattr(model, name)
        p[name + ".dw"] = fold(block.depthwise, block.bn1)
        p[name + ".pw"] = fold(block.pointwise.weight, block.bn2)
    p["block3.1"] = fold(model.block3.conv1.weight, model.block3.bn1)
    p["block3.2"] = fold(model.block3.conv2.weight, model.block3.bn2)
    p = {k: (w.to(device), b.to(device)) for k, (w, b) in p.items()}
    temperature = float(model.temperature)
    fc_w = (model.head.fc.weight / temperature).detach().float().to(device)
    fc_b = (model.head.fc.bias / temperature).detach().float().to(device)
    mean, inv_std = 0.5, 1.0 / 0.25

    def conv(x, key, **kw):
        w, b = p[key]
        return F.conv2d(x, w, b, **kw)

    def separable(x, name):
        c = x.shape[1]
        y = F.relu(conv(x, name + ".dw", padding=1, groups=c))
        return F.relu(conv(y, name + ".pw") + x)

    def forward(images):
        with torch.inference_mode():
            x = (images - mean) * inv_std
            x = F.relu(conv(x, "stem", stride=2, padding=1))
            x = separable(x, "block1")
            x = F.relu(conv(x, "down1", stride=2, padding=1))
            x = separable(x, "block2")
            x = F.relu(conv(x, "down2", stride=2, padding=1))
            y = F.relu(conv(x, "block3.1", padding=1))
            x = F.relu(conv(y, "block3.2", padding=1) + x)
            x = separable(x, "block4")
            return F.linear(x.mean(dim=(2, 3)), fc_w, fc_b)

    forward(example_input)  # first call: let oneDNN pick its kernels
    return forward
