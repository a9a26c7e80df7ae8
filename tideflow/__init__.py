"""tideflow: BuildFlow-style flows of primitives, a service and consumers.

```python
from tideflow import Flow, FlowOptions, Service, consumer, dependency, Scope
```
"""

from tideflow.consumer import Consumer, consumer
from tideflow.dependencies import Scope, dependency
from tideflow.flow import Flow, FlowOptions
from tideflow.service import Service

__version__ = "0.1.0"

__all__ = [
    "Consumer",
    "Flow",
    "FlowOptions",
    "Scope",
    "Service",
    "consumer",
    "dependency",
]
