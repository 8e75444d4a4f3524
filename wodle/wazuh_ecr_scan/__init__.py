"""wazuh-ecr-scan: Amazon ECR image-scan findings from CloudWatch Logs into Wazuh analysisd."""

__version__ = "0.1.0"
