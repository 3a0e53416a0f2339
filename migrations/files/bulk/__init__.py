"""The bulk file engine: SharePoint Migration API packages, staging, jobs and their verification."""
