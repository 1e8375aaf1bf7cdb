# The controller image: `modelcanary run` on Node 24, production dependencies only, as a
# non-root user. Node 24 runs the TypeScript sources directly (type stripping), so there is
# no compile step; the dependency stage keeps npm's cache and the lockfile install out of the
# final image. Node is PID 1 here and gets no default SIGTERM handling from the kernel, so
# `modelcanary run` must handle SIGTERM itself (graceful shutdown, see the controller issue).
# test/image.test.ts rebuilds this image's file tree without Docker and runs its entrypoint.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY crds ./crds
RUN ln -s /app/bin/modelcanary.js /usr/local/bin/modelcanary
# The node image's unprivileged user, by number so that runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["modelcanary"]
CMD ["run"]
