"""Known good: plain SGD with momentum on every parameter at one learning rate (0.01, the usual
fine-tuning rate: a tenth of a from-scratch one), and
`torch.optim.lr_scheduler.CosineAnnealingLR` over the number of steps that fit in the budget
(estimated from the first epoch's speed). Per-sample torchvision.transforms.v2 augmentation
in a Dataset wrapper fed through a DataLoader (no worker processes): random crop with
reflection padding, horizontal flip, random channel permutation."""

import time

import torch
import torch.nn as nn
import torchvision.transforms.v2 as T
from torch.utils.data import DataLoader, Dataset


class Augmented(Dataset):
    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        image, label = self.base[index]
        return self.transform(image), label


class Net(nn.Module):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_features, num_classes)

    def forward(self, x):
        return self.fc(self.backbone(x))


def finetune(backbone, train_set, num_classes, time_budget_s, device):
    t0 = time.perf_counter()
    budget = 0.75 * time_budget_s
    transform = T.Compose([
        T.RandomCrop(32, padding=4, padding_mode="reflect"),
        T.RandomHorizontalFlip(),
        T.RandomChannelPermutation(),
    ])
    loader = DataLoader(Augmented(train_set, transform), batch_size=32, shuffle=True, drop_last=True)
    model = Net(backbone, num_classes).to(device)
    model.train()
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    scheduler = None
    steps = 0
    epoch = 0
    while time.perf_counter() - t0 < budget:
        for images, labels in loader:
            if time.perf_counter() - t0 >= budget:
                break
            images, labels = images.to(device), labels.to(device)
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if scheduler is not None:
                scheduler.step()
        epoch += 1
        if epoch == 1:
            # how many steps fit in the time left, at the speed of the first epoch
            per_step = (time.perf_counter() - t0) / max(steps, 1)
            remaining = max(1, int((budget - (time.perf_counter() - t0)) / per_step))
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=remaining)
    model.eval()
    return model
