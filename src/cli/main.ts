// The `imagegen` command; its commands arrive with the CLI issue.
console.error('imagegen: the CLI is not available yet')
process.exit(2)
