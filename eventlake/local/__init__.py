"""The embedded local stack, standing in for AWS: moto's server (`stack`, with TTL
emulation), Lambda's DynamoDB Streams trigger (`poller`) and runtime (`lambda_runtime`)."""
