# The controller image: `modelcanary run` on Node 24, production dependencies only, as a
# non-root user. Node 24 runs the TypeScript sources directly (type stripping), so there is
# no compile step; the dependency stage keeps npm and its cache out of the final image.

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
EXPOSE 8080 8081
ENTRYPOINT ["modelcanary"]
CMD ["run"]
