"""The app: a bucket of uploads, its change stream, the classifier consumer and a results table.

Run it with ``tideflow run`` (``make run``); ``--stack`` picks local (default), gcp or aws.
"""

from image_classification.primitives import bucket, dataset, file_change_stream, table
from image_classification.processors.consumer import classify_image
from image_classification.processors.corrections import corrections_table
from image_classification.processors.service import service
from image_classification.settings import get_settings
from tideflow import Flow, FlowOptions

app = Flow(flow_options=FlowOptions(num_replicas=get_settings().num_replicas))
app.manage(bucket, dataset, table, corrections_table, file_change_stream)
app.add_service(service)
app.add_consumer(classify_image)
