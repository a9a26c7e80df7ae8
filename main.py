"""The app: a bucket of uploads, its change stream, the classifier consumer and a results table.

Run it with ``tideflow run`` (``make run``); ``--stack`` picks local (default), gcp or aws.
``build_flow`` (image_classification/flow.py) declares it from the settings read here.
"""

from image_classification.flow import build_flow
from image_classification.settings import get_settings

app = build_flow(get_settings())
