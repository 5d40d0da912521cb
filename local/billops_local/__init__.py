"""The local stack: moto, an HTTP API emulator, the stream poller and (later) the CCBill sandbox.

``python -m billops_local`` (``make run``) runs it; the pieces, all driven by template.yaml:

  template_resources  template.yaml -> typed specs (tables, queues, secrets, functions, routes, stream sources)
  aws_environment     moto's server, the resources in it, the process environment, handlers as Lambda would run them
  http_gateway        API Gateway HTTP API (payload format 2.0) in front of the handlers
  stream_poller       DynamoDB Streams -> function, as Lambda's event source mapping
  stack               LocalStack: starts and stops everything in order; add_service() for more
"""
