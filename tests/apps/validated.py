"""The suite app wrapped in wsgiref.validate.validator: any PEP 3333 violation on either
side (server or app) raises AssertionError, which the worker turns into a 500 + traceback."""
from wsgiref.validate import validator

import suite

application = validator(suite.application)
