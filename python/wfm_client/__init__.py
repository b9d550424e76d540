"""wfm_client: the Python client of the wfm service (Wasserstein Flow
Matching), with numpy and AnnData in and out.

    pip install ./python          # from the wfm source tree, in a venv (README, "Python")

    import anndata
    from wfm_client import Client
    adata = anndata.read_h5ad("tissue.h5ad")
    with Client("localhost:50051") as wfm:
        wfm.upload_anndata(adata, "tissue", features="obsm:X_pca",
                           spatial_key="spatial", sample_key="section",
                           label_key="cell_type")
        wfm.train("tissue", "tissue-wfm", k=8, steps=2000, watch=True, progress=True)
        niches = wfm.sample_niches("tissue-wfm", 100, condition="T cell")  # AnnData

Errors the server returns are raised as WfmError (gRPC code name, message
and method); bad local input as ValueError / TypeError / KeyError before
anything is sent.
"""

from wfm_client.client import Client, GaussianSamples, Samples, WfmError, channel_target

__version__ = "0.2.0"
__all__ = ["Client", "WfmError", "Samples", "GaussianSamples", "channel_target", "__version__"]
