"""A download whose checksum does not match (torchvision verifies the published MD5) stops
prepare with one line naming the folder, and nothing is left half-written."""

import pytest

from vaemix.data import cifar100, mnist
from vaemix.errors import DataError


@pytest.fixture()
def corrupt_downloads(monkeypatch):
    """Every URL 'downloads' garbage bytes, as a broken mirror or proxy would serve."""
    import torchvision.datasets.utils as tv_utils

    fetched = []

    def garbage(url, filename, chunk_size=0):
        fetched.append(url)
        with open(filename, "wb") as fh:
            fh.write(b"<html>not the archive</html>")

    monkeypatch.setattr(tv_utils, "_urlretrieve", garbage)
    monkeypatch.setattr(tv_utils, "_get_redirect_url", lambda url, max_hops=3: url)
    return fetched


@pytest.mark.parametrize("module,folder", [(mnist, "MNIST/raw"), (cifar100, "cifar-100-python")])
def test_checksum_mismatch_on_download_is_one_line(tmp_path, corrupt_downloads, module, folder):
    with pytest.raises(DataError) as err:
        module.ensure_raw(tmp_path, download=True)
    msg = str(err.value)
    assert corrupt_downloads, "the download path was not exercised"
    assert "\n" not in msg
    assert "download failed" in msg and "corrupted" in msg
    assert str(tmp_path / folder) in msg
    assert not list((tmp_path / folder).glob("*-ubyte")) and not (tmp_path / folder / "train").exists()
