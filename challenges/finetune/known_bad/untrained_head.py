"""Known bad: the head is never trained. The number of epochs comes from the budget assuming a minute
per epoch, which is 0 epochs here, so the model is returned with a randomly initialised head.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    model = nn.Sequential(backbone, nn.Linear(backbone.out_features, num_classes)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(train_set, batch_size=32, shuffle=True)
    epochs = int(time_budget_s) // 60  # "one epoch takes about a minute"
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()
