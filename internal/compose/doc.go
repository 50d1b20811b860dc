// Package compose owns turning compose files into a stack: it loads one or
// more files with compose-go (interpolation from the environment and the
// project directory's .env, files merged in order, x- extensions, the
// Compose Specification's schema checked) and converts the result into a
// shoalpb.StackSpec the managers deploy in one write, with docker stack
// deploy's naming (<stack>_<name>), labels (com.docker.stack.namespace,
// com.docker.stack.image) and warnings for keys a cluster ignores.
//
// Every error names the compose file and, where there is one, the key
// ("docker-compose.yml: services.web.deploy.replicas must be a number"),
// so nothing reaches the cluster from a file it cannot take as written.
//
// It is used by the command line only. It must not import manager/,
// node/, worker/ or gRPC: it is pure conversion, with no cluster access.
package compose
