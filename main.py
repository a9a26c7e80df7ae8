"""The app: a bucket of uploads, its change stream, the classifier consumer and a results table.

Run it with ``tideflow run`` (``make run``); ``--stack`` picks local (default) or gcp.
"""

from image_classification.primitives import bucket, dataset, file_change_stream, table
from image_classification.processors.consumer import classify_image
from image_classification.processors.service import service
from image_classification.settings import get_settings
from tideflow import Flow, FlowOptions

settings = get_settings()
account_info = settings.gcp_service_account_info

app = Flow(
    flow_options=FlowOptions(
        stack=settings.stack,
        num_replicas=settings.num_replicas,
        gcp_service_account_info=account_info.get_secret_value() if account_info else None,
    )
)
app.manage(bucket, dataset, table, file_change_stream)
app.add_service(service)
app.add_consumer(classify_image)
