"""The AWS managed policies SAM attaches to the functions' roles, as AWS publishes them (IAM console, "AWS managed
policies"; their statements have not changed in years). A role naming another managed policy stops the check:
its document must be added here first."""

_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]

MANAGED_POLICIES = {
    # Every function: its log group and streams (Lambda's runtime writes the logs).
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": _LOGS, "Resource": "*"}],
    },
    # An SQS event source: the event source mapping receives and deletes with the function's role.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                                     "sqs:GetQueueAttributes", *_LOGS], "Resource": "*"}],
    },
    # A DynamoDB stream event source: the event source mapping reads the stream with the function's role.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                                     "dynamodb:GetShardIterator", "dynamodb:ListStreams", *_LOGS],
                       "Resource": "*"}],
    },
    # VpcConfig (even an !If that comes out empty): the network interfaces of a function in a VPC.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": [*_LOGS, "ec2:CreateNetworkInterface",
                                                     "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                                                     "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                                                     "ec2:UnassignPrivateIpAddresses"], "Resource": "*"}],
    },
}
