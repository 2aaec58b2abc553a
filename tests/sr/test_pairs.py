import pytest
import torch

from pipeline.sr.pairs import sample


def test_pairs_are_windows_of_the_image_and_its_downscaled_copy():
    images = torch.rand(3, 1, 40, 48) * 2 - 1
    small = torch.nn.functional.avg_pool2d(images, 4)
    hr, lr = sample(images, 16, 32, 4, torch.Generator().manual_seed(0), hflip=False)
    assert hr.shape == (32, 1, 16, 16) and lr.shape == (32, 1, 4, 4)
    for k in range(32):   # every low-res patch is a grid-aligned window of the whole image downscaled
        found = any(torch.equal(lr[k, 0], small[i, 0, y:y + 4, x:x + 4])
                    for i in range(3) for y in range(0, 7) for x in range(0, 9))
        assert found


def test_pairs_reject_a_patch_off_the_grid():
    with pytest.raises(ValueError):
        sample(torch.zeros(1, 1, 32, 32), 18, 2, 4, torch.Generator())
